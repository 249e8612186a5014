#!/usr/bin/env bash
# Fuzzes the VHD reader (crates/vhd/fuzz, target `open_image`) for a bounded time.
#
#   scripts/fuzz-vhd.sh [SECONDS]      default 60
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). cargo-fuzz wants nightly; on a stable toolchain
# RUSTC_BOOTSTRAP=1 unlocks the sanitizer flags it passes. Seeds are valid images written by the
# `fuzz_seeds` example; findings land in crates/vhd/fuzz/artifacts/open_image/.
set -euo pipefail

seconds="${1:-60}"
root="$(cd "$(dirname "$0")/.." && pwd)"
fuzz_dir="$root/crates/vhd/fuzz"
corpus="$fuzz_dir/corpus/open_image"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is not installed: cargo install cargo-fuzz" >&2
    exit 2
fi

mkdir -p "$corpus"
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}" \
    cargo run --quiet --manifest-path "$root/Cargo.toml" -p vhd --example fuzz_seeds -- "$corpus"

cd "$fuzz_dir"
RUSTC_BOOTSTRAP=1 cargo fuzz run open_image "$corpus" -- \
    -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -timeout=10
