#!/usr/bin/env bash
# Generates the Kotlin and Swift bindings of the Branchline mobile library.
#
#   scripts/bindings.sh [OUT_DIR]        (default: target/bindings)
#
# Builds branchline-ffi (debug; the bindings do not depend on the profile), then
# runs the workspace's own uniffi-bindgen in --library mode on the built shared
# library, so the generator always matches the UniFFI version the library uses.
# Output: OUT_DIR/kotlin/uniffi/branchline_ffi/branchline_ffi.kt and
# OUT_DIR/swift/{branchline_ffi.swift,branchline_ffiFFI.h,branchline_ffiFFI.modulemap}.
# Needs no Kotlin or Swift toolchain. CI runs it as a check that generation works.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
out="${1:-$target_dir/bindings}"

cargo build -p branchline-ffi --lib --bin uniffi-bindgen

case "$(uname -s)" in
    Darwin) lib="$target_dir/debug/libbranchline_ffi.dylib" ;;
    *) lib="$target_dir/debug/libbranchline_ffi.so" ;;
esac
bindgen="$target_dir/debug/uniffi-bindgen"

rm -rf "$out/kotlin" "$out/swift"
"$bindgen" generate --library "$lib" --no-format --language kotlin --out-dir "$out/kotlin"
"$bindgen" generate --library "$lib" --no-format --language swift --out-dir "$out/swift"

# Generation that "succeeds" without writing the API would be no check at all.
kotlin="$out/kotlin/uniffi/branchline_ffi/branchline_ffi.kt"
swift="$out/swift/branchline_ffi.swift"
for file in "$kotlin" "$swift" "$out/swift/branchline_ffiFFI.h"; do
    [[ -s "$file" ]] || { echo "missing $file" >&2; exit 1; }
done
grep -q "class BranchlineClient" "$kotlin" || { echo "no BranchlineClient in $kotlin" >&2; exit 1; }
grep -q "class BranchlineClient" "$swift" || { echo "no BranchlineClient in $swift" >&2; exit 1; }
echo "bindings written to $out/kotlin and $out/swift"
