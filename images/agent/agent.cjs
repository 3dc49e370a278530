#!/usr/bin/node
// pershome lab agent: the harness's control channel on /dev/ttyS1 (docs/lab-images.md).
//   agent -> host:  READY <token|boot> <boot_id>            at start, and for each "PING <token>"
//   host -> agent:  C <id> <base64 of a shell command>      run with sh -c as root in /, in the background
//   agent -> host:  R <id> <rc> <base64 of stdout+stderr>   one line; over 1 MiB: its last 1 MiB, with a note
// Node, not sh: a shell agent forks base64/stat/flock/... for every command, ~0.85 s a round trip
// under TCG; this one spawns only the command's sh. It is one process writing each line with
// writeSync of the whole line, so replies cannot interleave (no flock needed).
/* global require, process, Buffer */
/* eslint-disable @typescript-eslint/no-require-imports */
"use strict";
const fs = require("fs");
const os = require("os");
const cp = require("child_process");
const path = require("path");

const DEV = process.env.PERSHOME_LAB_AGENT_DEV || "/dev/ttyS1";
const STATE = "/run/pershome-lab";
const LIMIT = 1024 * 1024;

fs.mkdirSync(STATE, { recursive: true });
cp.execFileSync("stty", ["-F", DEV, "raw", "-echo", "-ixon", "-ixoff", "-crtscts", "115200"]);
const fd = fs.openSync(DEV, "r+");
const bootId = fs.readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();

function say(line) {
  const buf = Buffer.from(line + "\n");
  let off = 0;
  while (off < buf.length) {
    try {
      off += fs.writeSync(fd, buf, off, buf.length - off);
    } catch (e) {
      if (e.code !== "EAGAIN") throw e;
    }
  }
}

let seq = 0;
function runCommand(id, b64) {
  const cmd = Buffer.from(b64, "base64").toString("utf8");
  const out = path.join(STATE, `out.${process.pid}.${++seq}`);
  const ofd = fs.openSync(out, "w", 0o600);
  let child;
  try {
    child = cp.spawn("/bin/sh", ["-c", cmd], { cwd: "/", stdio: ["ignore", ofd, ofd], env: process.env });
  } catch (e) {
    fs.closeSync(ofd);
    fs.rmSync(out, { force: true });
    say(`R ${id} 127 ${Buffer.from(`agent: ${e.message}\n`).toString("base64")}`);
    return;
  }
  fs.closeSync(ofd);
  const finish = (rc) => {
    let data;
    try {
      const size = fs.statSync(out).size;
      if (size > LIMIT) {
        const h = fs.openSync(out, "r");
        const tail = Buffer.alloc(LIMIT);
        fs.readSync(h, tail, 0, LIMIT, size - LIMIT);
        fs.closeSync(h);
        data = Buffer.concat([
          Buffer.from(`[agent: output was ${size} bytes; only its last ${LIMIT} follow]\n`),
          tail,
        ]);
      } else {
        data = fs.readFileSync(out);
      }
    } catch (e) {
      data = Buffer.from(`agent: reading the output: ${e.message}\n`);
    }
    fs.rmSync(out, { force: true });
    say(`R ${id} ${rc} ${data.toString("base64")}`);
  };
  child.on("error", () => finish(127));
  child.on("exit", (code, signal) => finish(code ?? 128 + (os.constants.signals[signal] || 0)));
}

say(`READY boot ${bootId}`);
let pending = "";
const input = fs.createReadStream("", { fd, autoClose: false, highWaterMark: 65536 });
input.on("data", (chunk) => {
  pending += chunk.toString("latin1");
  let i;
  while ((i = pending.indexOf("\n")) >= 0) {
    const line = pending.slice(0, i).replace(/\r$/, "");
    pending = pending.slice(i + 1);
    if (line.startsWith("PING ")) say(`READY ${line.slice(5)} ${bootId}`);
    else if (line.startsWith("C ")) {
      const m = /^C (\S+) ?(\S*)$/.exec(line);
      if (m) runCommand(m[1], m[2]);
      else say(`E bad ${Buffer.from(line).toString("base64")}`);
    } else if (line !== "") say(`E unknown ${Buffer.from(line).toString("base64")}`);
  }
});
input.on("error", (e) => {
  process.stderr.write(`agent: reading ${DEV}: ${e.message}\n`);
  process.exit(1);
});
