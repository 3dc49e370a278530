#!/bin/bash
# Builds dist-deb/pershome_<version>_<arch>.deb with plain dpkg-deb (no debhelper), from the
# working tree, without touching its dist/ or src/native/build/ (other tests may be using them):
# TypeScript and the libfuse3 addon are compiled into a staging directory, production
# node_modules come from "npm ci --omit=dev" there. See docs/packaging.md.
#   npm run package          (= bash ci/build-deb.sh)
#   OUT=/some/dir bash ci/build-deb.sh
# Reproducible: file times are clamped to SOURCE_DATE_EPOCH (default: the last commit's time),
# owners are root:root, the file list is sorted, and the changelog is gzipped with -n.
set -euo pipefail
umask 022
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
pkg=$top/packaging
out=${OUT:-$top/dist-deb}

version=$(node -p 'require("./package.json").version')
arch=$(dpkg --print-architecture)
# the Debian version: package.json's version and a Debian revision, from the changelog's top entry
debversion=$(sed -n '1s/^pershome (\([^)]*\)).*/\1/p' "$pkg/debian/changelog")
if [ "${debversion%-*}" != "$version" ]; then
  echo "build-deb: packaging/debian/changelog is at $debversion but package.json at $version;" \
    "add a changelog entry first" >&2
  exit 1
fi
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}

work=$(mktemp -d "${TMPDIR:-/tmp}/pershome-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
app=$root/usr/lib/pershome
mkdir -p "$app/bin" "$app/dist" "$app/docs" "$app/src/native/build/Release"

echo "build-deb: compiling TypeScript" >&2
# the product only (src/): the lab, images and features are not shipped
npx --no-install tsc -p tsconfig.src.json --outDir "$work/tsc" --sourceMap false
cp -a "$work/tsc/src" "$app/dist/src"

echo "build-deb: building the libfuse3 addon" >&2
mkdir -p "$work/native"
cp src/native/binding.gyp src/native/*.c src/native/*.h "$work/native/"
gyp=$(dirname "$(readlink -f "$(command -v npm)")")/../node_modules/node-gyp/bin/node-gyp.js
nodedir=$(npm config get nodedir 2>/dev/null || true)
case $nodedir in "" | undefined | null) nodedir_arg=() ;; *) nodedir_arg=(--nodedir="$nodedir") ;; esac
# Debian's hardening flags (fortify, stack protector, relro, bindnow) on top of binding.gyp's
export DEB_BUILD_MAINT_OPTIONS=hardening=+all
# (the staging path is random: map it away so the addon is the same bytes on every build)
CFLAGS="$(dpkg-buildflags --get CPPFLAGS) $(dpkg-buildflags --get CFLAGS) -ffile-prefix-map=$work=."
LDFLAGS="$(dpkg-buildflags --get LDFLAGS)"
(cd "$work/native" && CFLAGS=$CFLAGS LDFLAGS=$LDFLAGS PERSHOME_ASAN=0 node "$gyp" rebuild "${nodedir_arg[@]}" --loglevel=warn >&2)
install -m 0644 "$work/native/build/Release/pershome_fuse.node" "$app/src/native/build/Release/"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$app/src/native/build/Release/pershome_fuse.node"

echo "build-deb: production node_modules (npm ci --omit=dev)" >&2
cp package.json package-lock.json "$app/"
(cd "$app" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
rm -f "$app/package-lock.json" "$app/node_modules/.package-lock.json"

# the app's own scripts and documents
# entry points node runs directly have a "#!/usr/bin/env node" line: keep them executable
chmod 0755 "$app/dist/src/cli/main.js" "$app/dist/src/login/hook.js"
install -m 0755 bin/pershome-pam-hook bin/pershome-notify "$app/bin/"
install -m 0644 docs/*.md "$app/docs/"
install -D -m 0755 "$pkg/pershome.sh" "$root/usr/bin/pershome"

# data files, where docs/login.md says they go
install -D -m 0644 data/pam-configs/pershome "$root/usr/share/pam-configs/pershome"
install -D -m 0644 data/systemd/pershome@.service "$root/lib/systemd/system/pershome@.service"
install -D -m 0644 data/pershome.conf "$root/etc/pershome/pershome.conf"
install -D -m 0644 data/xdg-autostart/pershome-notify.desktop "$root/etc/xdg/autostart/pershome-notify.desktop"
for f in data/applications/*.desktop; do
  install -D -m 0644 "$f" "$root/usr/share/applications/$(basename "$f")"
done

# man page, copyright, changelog
mkdir -p "$root/usr/share/man/man1" "$root/usr/share/doc/pershome"
sed "s/@VERSION@/$version/" "$pkg/man/pershome.1" | gzip -9n > "$root/usr/share/man/man1/pershome.1.gz"
install -m 0644 "$pkg/debian/copyright" "$root/usr/share/doc/pershome/copyright"
gzip -9n < "$pkg/debian/changelog" > "$root/usr/share/doc/pershome/changelog.Debian.gz"

# normalise: modes, no stray files from npm (READMEs are kept, tests/dotfiles are not shipped)
find "$app/node_modules" \( -name '.*' -o -name '*.map' \) -prune -exec rm -rf {} + 2>/dev/null || true
find "$root" -type d -exec chmod 0755 {} +
find "$root" -type f ! -perm -u+x -exec chmod 0644 {} +
find "$root" -type f -perm -u+x -exec chmod 0755 {} +
# npm marks some plain modules executable; only real scripts stay so
find "$app/node_modules" -type f -perm -u+x ! -path '*/.bin/*' -exec sh -c 'head -c2 "$1" | grep -q "#!" || chmod 0644 "$1"' _ {} \;

# control area
mkdir -p "$root/DEBIAN"
shlibs=$(cd "$work" && mkdir -p debian && printf 'Source: pershome\n\nPackage: pershome\nArchitecture: any\n' > debian/control &&
  dpkg-shlibdeps -O "$app/src/native/build/Release/pershome_fuse.node" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
shlibs=${shlibs:-"libc6 (>= 2.34), libfuse3-3 (>= 3.2.3)"}
size=$(du -sk --apparent-size --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$debversion/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" -e "s/@SHLIBS@/$shlibs/" \
  "$pkg/debian/control.in" > "$root/DEBIAN/control"
install -m 0644 "$pkg/debian/conffiles" "$root/DEBIAN/conffiles"
for s in postinst prerm postrm; do install -m 0755 "$pkg/debian/$s" "$root/DEBIAN/$s"; done
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\n' | LC_ALL=C sort |
  grep -v '^etc/' | xargs -d '\n' md5sum > DEBIAN/md5sums)
chmod 0644 "$root/DEBIAN/md5sums"

find "$root" -newermt "@$SOURCE_DATE_EPOCH" -exec touch --no-dereference --date="@$SOURCE_DATE_EPOCH" {} +
mkdir -p "$out"
deb=$out/pershome_${debversion}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >&2
echo "$deb"
