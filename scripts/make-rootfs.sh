#!/bin/sh
# Builds a minimal root filesystem from Debian's static busybox:
#   make-rootfs.sh DIR
# DIR gets bin/busybox, a symlink per applet, /etc/passwd and /etc/group
# (root, a uid 1000 user and nobody) and the usual empty mount points.
set -eu
dir=$1
busybox=${BUSYBOX:-/bin/busybox}
[ -x "$busybox" ] || { echo "make-rootfs: $busybox not found (apt-get install busybox-static)" >&2; exit 1; }
tmp="$dir.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp/bin" "$tmp/etc" "$tmp/proc" "$tmp/sys" "$tmp/dev" "$tmp/tmp" "$tmp/root" "$tmp/home/user" "$tmp/sbin" "$tmp/usr/bin" "$tmp/usr/sbin" "$tmp/var"
chmod 1777 "$tmp/tmp"
cp "$busybox" "$tmp/bin/busybox"
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$tmp/bin/$applet"
done
cat > "$tmp/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
user:x:1000:1000:user:/home/user:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
P
cat > "$tmp/etc/group" <<'G'
root:x:0:
tty:x:5:
user:x:1000:
nogroup:x:65534:
G
echo "capsa" > "$tmp/etc/hostname"
rm -rf "$dir"
mv "$tmp" "$dir"
