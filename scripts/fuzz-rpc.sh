#!/bin/sh
# Fuzz the xapi-rpc decoders for a bounded time per target.
#
#   scripts/fuzz-rpc.sh                 # 60 s per target
#   FUZZ_SECONDS=600 scripts/fuzz-rpc.sh
#   FUZZ_TARGETS=jsonrpc_decode scripts/fuzz-rpc.sh
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). A nightly toolchain is used when installed
# (unless FUZZ_STABLE=1); otherwise the default toolchain with RUSTC_BOOTSTRAP=1, since
# cargo-fuzz needs -Z flags. The corpus
# starts from the wire samples in crates/xapi-rpc/tests/data and is kept in
# crates/xapi-rpc/fuzz/corpus/ (git-ignored by the fuzz crate's .gitignore).
set -eu

seconds="${FUZZ_SECONDS:-60}"
targets="${FUZZ_TARGETS:-xmlrpc_decode jsonrpc_decode}"
root="$(cd "$(dirname "$0")/.." && pwd)"
crate="$root/crates/xapi-rpc"

if ! cargo fuzz --help >/dev/null 2>&1; then
    echo "fuzz-rpc: cargo-fuzz is not installed (cargo install cargo-fuzz)" >&2
    exit 2
fi

toolchain=""
if [ "${FUZZ_STABLE:-0}" != 1 ] && rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    toolchain="+nightly"
else
    export RUSTC_BOOTSTRAP=1
fi

# Keep fuzz builds away from the workspace target directory.
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$crate/fuzz/target}"

cd "$crate"
for target in $targets; do
    corpus="$crate/fuzz/corpus/$target"
    mkdir -p "$corpus"
    case "$target" in
        xmlrpc_decode) cp "$crate"/tests/data/*.xml "$corpus"/ ;;
        jsonrpc_decode) cp "$crate"/tests/data/*.json "$corpus"/ ;;
    esac
    echo "fuzz-rpc: $target for ${seconds}s"
    # shellcheck disable=SC2086 # $toolchain is empty or one word.
    cargo $toolchain fuzz run "$target" "$corpus" -- \
        -max_total_time="$seconds" -max_len=65536 -timeout=10
done
echo "fuzz-rpc: no crashes"
