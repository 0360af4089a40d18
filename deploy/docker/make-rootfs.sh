#!/bin/sh
# Assemble the container image's root filesystem and pack it for `ADD rootfs.tar /`:
#
#   make-rootfs.sh DIST_DIR BUSYBOX OUT_DIR
#
# DIST_DIR is the dist layout (`make dist`: bin/flink, bin/flink-*.sh, config/server.properties),
# BUSYBOX a statically linked busybox (Debian: busybox-static). OUT_DIR receives rootfs.tar and the
# Dockerfile, and nothing else: it is the whole build context. The tree is staged next to it in
# OUT_DIR.rootfs/.
#
# The image holds the dist under /opt/flink, exactly the shared libraries `ldd` lists for the binary
# (and the dynamic loader), busybox with its applet links (sh, ls, cat, ps, kill, ...), a minimal
# /etc, and /tmp with mode 1777. Owners in the tar are root, except /home/flink (the `flink` user).
set -eu

if [ $# -ne 3 ]; then
  echo "usage: $0 DIST_DIR BUSYBOX OUT_DIR" >&2
  exit 2
fi
here=$(dirname "$(readlink -f "$0")")

fail() {
  echo "make-rootfs: $*" >&2
  exit 1
}

# Absolute paths: the work below happens inside the staging tree.
dist=$(readlink -f "$1")
busybox=$(readlink -f "$2")
out=$(readlink -f "$3")
root=$out.rootfs

[ -x "$dist/bin/flink" ] || fail "$1/bin/flink not found: run \`make dist\` first"
[ -x "$busybox" ] || fail "$2 not found: install a static busybox (apt-get install busybox-static)"
# ldd exits non-zero for a static binary; a dynamic busybox would need libraries the image lacks.
if ldd "$busybox" >/dev/null 2>&1; then
  fail "$busybox is dynamically linked: install busybox-static, or set BUSYBOX to a static one"
fi

rm -rf "$root" "$out"
mkdir -p "$out" "$root"
cd "$root"
mkdir -p bin sbin usr/bin usr/sbin etc opt/flink home/flink root tmp var/tmp
chmod 1777 tmp var/tmp
chmod 700 root

# The distribution, plus the entrypoint.
cp -R "$dist/." opt/flink/
cp "$here/flink-docker-entrypoint.sh" opt/flink/bin/
chmod 755 opt/flink/bin/*

# The libraries the binary links and the loader, at the paths ldd reports (the loader's own path
# is baked into the binary's PT_INTERP; the loader searches /lib/<multiarch> by default).
libraries=$(ldd "$dist/bin/flink" | awk '
  /not found/ { print "MISSING:" $1; next }
  $2 == "=>" && $3 ~ /^\// { print $3; next }
  $1 ~ /^\// { print $1 }')
for library in $libraries; do
  case $library in
    MISSING:*) fail "the binary links ${library#MISSING:}, which ldd cannot find" ;;
  esac
  mkdir -p ".$(dirname "$library")"
  cp -L "$library" ".$library"
done

# busybox and a link for each applet at its usual place.
cp "$busybox" bin/busybox
chmod 755 bin/busybox
for applet in $("$busybox" --list-full); do
  case $applet in
    linuxrc) continue ;;
  esac
  [ -e "$applet" ] || ln -s /bin/busybox "$applet"
done

cat >etc/passwd <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
flink:x:1000:1000:Flink:/home/flink:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat >etc/group <<'GROUP'
root:x:0:
flink:x:1000:
nogroup:x:65534:
GROUP
# Without this glibc asks DNS before /etc/hosts, and `localhost` must resolve from the file.
cat >etc/nsswitch.conf <<'NSSWITCH'
passwd: files
group: files
hosts: files dns
NSSWITCH

# Fixed owners and times, sorted: the same inputs give the same tar, so Docker's cache holds.
tar_options="--sort=name --mtime=@0 --numeric-owner --format=gnu"
# shellcheck disable=SC2086 # the options are words
tar $tar_options --owner=0 --group=0 --exclude=./home/flink -cf "$out/rootfs.tar" .
# shellcheck disable=SC2086
tar $tar_options --owner=1000 --group=1000 -rf "$out/rootfs.tar" ./home/flink
cp "$here/Dockerfile" "$out/Dockerfile"
