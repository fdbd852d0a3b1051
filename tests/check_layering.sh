#!/usr/bin/env bash
# DESIGN.md §2 dependency rules, checked on the source tree. Prints each violation; exits 1 if any.
set -u
cd "${DS_SOURCE_ROOT:-$(dirname "$0")/..}" || exit 1
fail=0
report() { echo "layering: $1"; fail=1; }

# 1. core/ includes nothing from kernels/, pipelines/, plugin/, and no CUDA, GLib, GStreamer or libav.
hits=$(grep -rnE '#include[[:space:]]*[<"](kernels/|pipelines/|plugin/|cuda|cublas|glib|gst/|libav)' core 2>/dev/null)
[ -z "$hits" ] || report "core/ includes a higher layer or a host framework:
$hits"
# 2. Only kernels/cuda includes CUDA headers.
hits=$(grep -rnE '#include[[:space:]]*[<"](cuda|cublas|cuda_runtime|cuda_bf16|mma)' --include='*.h' --include='*.cpp' \
  --include='*.c' --include='*.cu' --include='*.cuh' core kernels/cpu pipelines plugin include tests 2>/dev/null | grep -v '^tests/cuda/')
[ -z "$hits" ] || report "CUDA headers outside kernels/cuda:
$hits"
# 3. plugin/* include only include/ditstream.h of ours.
hits=$(grep -rnE '#include[[:space:]]*"(core|kernels|pipelines)/' plugin 2>/dev/null)
[ -z "$hits" ] || report "plugin/ reaches past the C API:
$hits"
# kernels/ implement core's interface and never reach up into pipelines/ or plugin/.
hits=$(grep -rnE '#include[[:space:]]*"(pipelines|plugin)/' kernels 2>/dev/null)
[ -z "$hits" ] || report "kernels/ includes pipelines/ or plugin/:
$hits"
# The C API header stays C: no C++ standard headers or namespaces.
hits=$(grep -nE '#include[[:space:]]*<(string|vector|memory|functional)>|namespace ' include/ditstream.h)
[ -z "$hits" ] || report "include/ditstream.h uses C++:
$hits"

[ $fail -eq 0 ] && echo "layering: all rules hold"
exit $fail
