#!/usr/bin/env bash
# Builds dptrain against Debian 13 (trixie: LibTorch 2.6, GCC 14, toml11 4)
# in a debootstrap chroot and runs README's second command there
# (scripts/test.sh: format check, -Werror build, install + examples, fuzzers,
# fast tests, ASan suites). Not part of the default CI run: from nothing it
# took 786 s on a 2-vCPU Intel Xeon, 981 s on a 2-vCPU Zen 4 AMD EPYC and
# about an hour on an older 2-core AMD EPYC (debootstrap and the packages
# ~10 min there, a cold build ~35 min), and the chroot needs ~6 GB.
# Usage (as root): bash scripts/debian13_check.sh [CHROOT_DIR]
#   CHROOT_DIR defaults to /var/tmp/dptrain-trixie and is kept for reruns
#   (the build folder inside it too: a rerun rebuilds only what changed).
# Env: DPTRAIN_DEBIAN_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target=${1:-/var/tmp/dptrain-trixie}
mirror=${DPTRAIN_DEBIAN_MIRROR:-http://deb.debian.org/debian}
start=$SECONDS

if [[ $(id -u) -ne 0 ]]; then
  echo "debian13_check: error: needs root (debootstrap, chroot, mount)" >&2
  exit 1
fi
if [[ ! -x "$target/usr/bin/apt-get" ]]; then
  if ! command -v debootstrap >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap
  fi
  echo "== debootstrap trixie into $target"
  debootstrap --variant=minbase trixie "$target" "$mirror"
fi

# The tree as git sees it (tracked and untracked-but-not-ignored files), so
# that what is tested is what a clone would hold plus the work in progress.
echo "== copy the tree ($((SECONDS - start)) s)"
rm -rf "$target/root/dptrain"
mkdir -p "$target/root/dptrain"
git -C "$root" ls-files -z --cached --others --exclude-standard |
  (cd "$root" && xargs -0 -r stat --printf='%n\0' 2>/dev/null) |
  tar -C "$root" --null -T - -cf - | tar -C "$target/root/dptrain" -xf -
git -C "$root" rev-parse HEAD >"$target/root/dptrain/.source-commit" 2>/dev/null || true

cp /etc/resolv.conf "$target/etc/resolv.conf"
mounted=()
cleanup() {
  local m
  for m in "${mounted[@]}"; do umount "$m" 2>/dev/null || true; done
}
trap cleanup EXIT
for m in proc dev/pts; do
  mkdir -p "$target/$m"
  if ! mountpoint -q "$target/$m"; then
    case $m in
      proc) mount -t proc proc "$target/proc" ;;
      dev/pts) mount -t devpts devpts "$target/dev/pts" ;;
    esac
    mounted+=("$target/$m")
  fi
done

echo "== scripts/test.sh inside the chroot ($((SECONDS - start)) s)"
# git for the format check's file list; the rest comes from setup.sh.
status=0
chroot "$target" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
  LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive bash -c '
    set -euo pipefail
    command -v git >/dev/null || {
      apt-get update -qq && apt-get install -y -qq --no-install-recommends git ca-certificates; }
    cd /root/dptrain
    git init -q . 2>/dev/null && git add -A >/dev/null 2>&1 || true
    DPTRAIN_BUILD_DIR=/root/build-trixie DPTRAIN_ASAN_BUILD_DIR=/root/build-trixie-asan \
      bash scripts/test.sh
    echo "LibTorch: $(dpkg-query -W -f="\${Version}" libtorch-dev), $(gcc --version | head -1)"
  ' || status=$?
echo "debian13_check: exit $status after $((SECONDS - start)) s"
exit "$status"
