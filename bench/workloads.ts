// The workloads (issue 8). A workload is a sequence of timed steps run in one fresh directory of
// the mount; each step has a check, so that a candidate that fails is reported, not timed.

export type Kind = "metadata" | "io" | "mount";

export interface Step {
  name: string;
  kind: Kind;
  /** Timed shell command, run in the workload's directory on the mount. */
  cmd: string;
  /** Untimed check command; its trimmed stdout must equal `expect`. */
  check: string;
  expect: string;
  /** Unmount, drop the page cache and mount again before this step (cold cache). */
  cold?: boolean;
}

export interface Workload {
  name: string;
  /** Untimed shell command run on the mount before the first step. */
  setup?: string;
  steps: Step[];
}

export interface WorkloadParams {
  /** Tar file of a real source tree, and how many entries other than directories it holds. */
  tarball: string;
  tarFiles: number;
  /** MiB of the sequential file. */
  seqMb: number;
  /** small files created, listed, read and deleted (default 5,000, in 50 folders) */
  files?: number;
  /** files renamed, and chmod'ed and linked to (default 2,000) */
  churn?: number;
}

/** 5000 -> "5k", 500 -> "500": counts as the step names show them. */
const count = (n: number): string => (n >= 1000 && n % 1000 === 0 ? `${n / 1000}k` : String(n));

const DIRS = 50;

/** bash: `n` files of 1 KiB in 50 directories, with builtins only (no fork per file). */
const createSmall = (n: number): string =>
  `s=$(head -c 1023 /dev/zero | tr '\\0' x); mkdir w; for d in $(seq 1 ${DIRS}); do mkdir w/d$d; for i in $(seq 1 ${n / DIRS}); do printf '%s\\n' "$s" > w/d$d/f$i; done; done`;

const py = (code: string): string => `python3 -c '${code}'`;

export function workloads(p: WorkloadParams): Workload[] {
  const SMALL = p.files ?? 5000;
  const N = p.churn ?? 2000;
  return [
    {
      name: "files",
      steps: [
        {
          name: `create ${count(SMALL)}`,
          kind: "metadata",
          cmd: createSmall(SMALL),
          check: "find w -type f | wc -l",
          expect: `${SMALL}`,
        },
        {
          name: `ls -lR ${count(SMALL)}`,
          kind: "metadata",
          cmd: "ls -lR w > /dev/null",
          check: "ls -lR w | grep -c '^-'",
          expect: `${SMALL}`,
        },
        {
          name: `read ${count(SMALL)}`,
          kind: "metadata",
          cmd: "cat w/*/* > /dev/null",
          check: "cat w/*/* | wc -c",
          expect: `${SMALL * 1024}`,
        },
        {
          name: `delete ${count(SMALL)}`,
          kind: "metadata",
          cmd: "rm -rf w",
          check: "test -e w && echo left || echo gone",
          expect: "gone",
        },
      ],
    },
    {
      name: "tree",
      steps: [
        {
          name: "untar",
          kind: "metadata",
          cmd: `tar -xf '${p.tarball}'`,
          check: "find t ! -type d | wc -l",
          expect: `${p.tarFiles}`,
        },
        {
          name: "git add+commit",
          kind: "metadata",
          cmd: "cd t && git init -q && git add -A && git commit -q -m x",
          check: "cd t && git ls-files | wc -l",
          expect: `${p.tarFiles}`,
        },
        {
          name: "git status x2",
          kind: "metadata",
          cmd: "cd t && git status --porcelain > /dev/null && git status --porcelain > /dev/null",
          check: "cd t && git status --porcelain | wc -l",
          expect: "0",
        },
        {
          // a login: git's index holds each file's inode number; a changed one makes status
          // read and hash that file again (src/fs/ino-numbers.ts)
          name: "git status after remount",
          kind: "metadata",
          cold: true,
          cmd: "cd t && git status --porcelain > /dev/null",
          check: "cd t && git status --porcelain | wc -l",
          expect: "0",
        },
      ],
    },
    {
      name: "seq",
      steps: [
        {
          name: `write ${p.seqMb} MB`,
          kind: "io",
          cmd: `dd if=/dev/zero of=big bs=1M count=${p.seqMb} conv=fsync status=none`,
          check: "stat -c %s big",
          expect: `${p.seqMb * 1024 * 1024}`,
        },
        {
          name: `read ${p.seqMb} MB`,
          kind: "io",
          cold: true,
          cmd: "dd if=big of=/dev/null bs=1M status=none",
          check: "cmp -n 1048576 big /dev/zero && echo same",
          expect: "same",
        },
      ],
    },
    {
      name: "rename",
      setup: py(`import os\nfor i in range(${N}): open(f"f{i}","w").write("x")\nos.mkdir("a")`),
      steps: [
        {
          name: `rename ${count(N)} x3`,
          kind: "metadata",
          cmd: py(
            `import os\nfor i in range(${N}): os.rename(f"f{i}", f"g{i}")\nfor i in range(${N}): os.rename(f"g{i}", f"a/h{i}")\nfor i in range(0,${N},2): os.rename(f"a/h{i}", f"a/h{i+1}")`,
          ),
          check: "ls a | wc -l",
          expect: `${N / 2}`,
        },
      ],
    },
    {
      name: "chmod",
      setup: py(`import os\nfor i in range(${N}): open(f"f{i}","w").write("x")`),
      steps: [
        {
          name: `chmod+symlink ${count(N)}`,
          kind: "metadata",
          cmd: py(
            `import os\nfor i in range(${N}):\n os.chmod(f"f{i}", 0o600)\n os.symlink(f"f{i}", f"l{i}")\n os.readlink(f"l{i}")\n os.chmod(f"f{i}", 0o640)\n os.lstat(f"l{i}")`,
          ),
          check: `echo $(find . -type l | wc -l) $(stat -c %a f${N - 1})`,
          expect: `${N} 640`,
        },
      ],
    },
  ];
}

/** The workloads of workloads() (the A/B runners take these). */
export const TIMED_WORKLOADS = ["files", "tree", "seq", "rename", "chmod"];
/** Every workload of npm run bench: the timed ones, then the mount, memory and login runs. */
export const WORKLOAD_NAMES = [...TIMED_WORKLOADS, "mount", "memory", "login"];
