#!/usr/bin/env bash
# Build KenLM's lmplz and build_binary (not in Debian, not in the kenlm wheel) from the
# PyPI kenlm sdist. Needs cmake and boost (program-options, system, thread, test).
# Output: data/kenlm/bin/{lmplz,build_binary}. About a minute on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
out=data/kenlm
[ -x "$out/bin/lmplz" ] && [ -x "$out/bin/build_binary" ] && exit 0
scripts/apt-install.sh cmake g++ libboost-program-options-dev libboost-system-dev \
  libboost-thread-dev libboost-test-dev zlib1g-dev libbz2-dev liblzma-dev
mkdir -p "$out/src"
if [ ! -f "$out/src/CMakeLists.txt" ]; then
  tmp=$(mktemp -d)
  .venv/bin/pip download -q --no-deps --no-build-isolation --no-binary kenlm -d "$tmp" "kenlm==0.3.0" \
    || .venv/bin/pip download -q --no-deps -d "$tmp" "kenlm==0.3.0"
  tar xzf "$tmp"/kenlm-*.tar.gz -C "$out/src" --strip-components=1
  rm -rf "$tmp"
fi
cmake -S "$out/src" -B "$out/build" -DCMAKE_BUILD_TYPE=Release -DKENLM_MAX_ORDER=6 >/dev/null
cmake --build "$out/build" --target lmplz build_binary -j "$(nproc)"
mkdir -p "$out/bin"
cp "$out/build/bin/lmplz" "$out/build/bin/build_binary" "$out/bin/"
echo "built $out/bin/lmplz and $out/bin/build_binary"
