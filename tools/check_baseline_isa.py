"""Static proof that nncore's compiled module runs on any x86-64 CPU: outside the dispatched
SIMD kernels, it uses no instruction beyond the x86-64 baseline (SSE2).

    python tools/check_baseline_isa.py                 # the nncore that `import nncore` finds
    python tools/check_baseline_isa.py path/to/_core.so [more .so files]

Disassembles each file with objdump and sorts every instruction of every function:

- instructions beyond the baseline (VEX/EVEX-encoded ones, ymm/zmm/mask registers, SSE3,
  SSSE3, SSE4, POPCNT/LZCNT/BMI, F16C, ...) may appear only in the per-ISA kernels that
  src_c/runtime/cpu.c dispatches to at run time (nn_<form>_avx2_*, nn_<form>_avx512_* and the
  element-wise loops' *_avx2 / *_avx512 variants, compiled with the target attributes of
  common.h), and the AVX2 kernels must not use AVX-512;
- as a check of the check, each AVX2 kernel must use ymm registers and each AVX-512 kernel
  zmm registers (a disassembly that found nothing would prove nothing).

The repaired wheel's bundled libraries (nncore.libs/, e.g. libgomp) are checked too: they have
no dispatched kernels, so nothing beyond the baseline is allowed there.

Prints PASS/FAIL lines; exits 1 on a violation, 2 when objdump is missing. x86-64 only.
"""

import argparse
import collections
import glob
import os
import re
import shutil
import subprocess
import sys

# Functions allowed to go beyond the baseline: the dispatched kernels, by ISA.
# Their names carry the path as a word: nn_packed_avx512_f32, nn_dot_avx2_f64, sgd_f32_avx2
# (the NN_ISA_VARIANTS of common.h), and the compiler's clones of them (name.constprop.0).
KERNELS = {"avx2": re.compile(r"(^|_)avx2(_|$|\.)"), "avx512": re.compile(r"(^|_)avx512(_|$|\.)")}

# Non-VEX mnemonics beyond SSE2 (AT&T syntax, as objdump prints them; operand-size suffixes are
# stripped before the lookup). VEX/EVEX instructions all start with "v" and are caught apart.
BEYOND_BASELINE = {
    # SSE3
    "addsubps", "addsubpd", "haddps", "haddpd", "hsubps", "hsubpd", "lddqu", "movddup",
    "movshdup", "movsldup", "fisttp", "monitor", "mwait",
    # SSSE3
    "pabsb", "pabsw", "pabsd", "palignr", "phaddw", "phaddd", "phaddsw", "phsubw", "phsubd",
    "phsubsw", "pmaddubsw", "pmulhrsw", "pshufb", "psignb", "psignw", "psignd",
    # SSE4.1
    "blendps", "blendpd", "blendvps", "blendvpd", "dpps", "dppd", "extractps", "insertps",
    "movntdqa", "mpsadbw", "packusdw", "pblendvb", "pblendw", "pcmpeqq", "pextrb", "pextrd",
    "pextrq", "phminposuw", "pinsrb", "pinsrd", "pinsrq", "pmaxsb", "pmaxsd", "pmaxud",
    "pmaxuw", "pminsb", "pminsd", "pminud", "pminuw", "pmovsxbw", "pmovsxbd", "pmovsxbq",
    "pmovsxwd", "pmovsxwq", "pmovsxdq", "pmovzxbw", "pmovzxbd", "pmovzxbq", "pmovzxwd",
    "pmovzxwq", "pmovzxdq", "pmuldq", "pmulld", "ptest", "roundps", "roundpd", "roundss",
    "roundsd",
    # SSE4.2, POPCNT, LZCNT, BMI1/2, MOVBE, ADX, CX16, AES, PCLMUL, SHA, RDRAND, PRFCHW
    "crc32", "pcmpestri", "pcmpestrm", "pcmpistri", "pcmpistrm", "pcmpgtq", "popcnt",
    "lzcnt", "tzcnt", "andn", "bextr", "blsi", "blsmsk", "blsr", "bzhi", "mulx", "pdep",
    "pext", "rorx", "sarx", "shlx", "shrx", "movbe", "adcx", "adox", "cmpxchg16b", "aesenc",
    "aesenclast", "aesdec", "aesdeclast", "aesimc", "aeskeygenassist", "pclmulqdq",
    "sha1rnds4", "sha1nexte", "sha1msg1", "sha1msg2", "sha256rnds2", "sha256msg1",
    "sha256msg2", "rdrand", "rdseed", "prefetchw", "prefetchwt1",
    # AVX-512 mask registers
    "kmovb", "kmovw", "kmovd", "kmovq", "kandw", "korw", "kxorw", "knotw", "kortestw",
}
# Baseline instructions that happen to start with "v" (none is emitted by a compiler for
# user code, but keep the rule honest).
V_BASELINE = {"verr", "verw"}

FUNC = re.compile(r"^[0-9a-f]+ <(?P<name>[^>]+)>:$")
INSN = re.compile(r"^\s+[0-9a-f]+:\s+(?P<mnem>[a-z0-9.]+)(?:\s+(?P<ops>.*))?$")
WIDE = re.compile(r"%[yz]mm\d+|%k[0-7]\b|%xmm(?:1[6-9]|2\d|3[01])\b|\{%k[0-7]\}")
AVX512_ONLY = re.compile(r"%zmm\d+|%k[0-7]\b|%[xy]mm(?:1[6-9]|2\d|3[01])\b|\{%k[0-7]\}")


def beyond_baseline(mnem, ops):
    """True if this instruction needs more than the x86-64 baseline."""
    m = mnem.split(".")[0]  # e.g. "vmovups.s" (objdump's swapped-operand form)
    if m.startswith("v") and m not in V_BASELINE:
        return True
    if WIDE.search(ops or ""):
        return True
    if m in BEYOND_BASELINE:
        return True
    # pinsrd etc. print as pinsrd; popcnt may carry an operand-size suffix (popcntq)
    for suffix in ("b", "w", "l", "q"):
        if m.endswith(suffix) and m[:-1] in BEYOND_BASELINE:
            return True
    return False


def disassemble(path, objdump):
    """{function name: [(mnemonic, operands), ...]} of the .text-like sections of path."""
    out = subprocess.run([objdump, "-d", "--no-show-raw-insn", path], capture_output=True,
                         text=True, check=True).stdout
    funcs = collections.OrderedDict()
    current = None
    for line in out.splitlines():
        f = FUNC.match(line)
        if f:
            current = f.group("name").split("@")[0]
            funcs.setdefault(current, [])
            continue
        i = INSN.match(line)
        if i and current is not None and not line.strip().endswith("(bad)"):
            funcs[current].append((i.group("mnem"), i.group("ops") or ""))
    return funcs


def kernel_isa(name):
    for isa, pattern in KERNELS.items():
        if pattern.search(name):
            return isa
    return None


def check(path, objdump, has_kernels):
    """Returns a list of failure lines (empty: the file passes) and prints a summary."""
    funcs = disassemble(path, objdump)
    n_insn = sum(len(v) for v in funcs.values())
    failures = []
    kernels = collections.Counter()
    for name, insns in funcs.items():
        isa = kernel_isa(name) if has_kernels else None
        bad = [(m, o) for m, o in insns if beyond_baseline(m, o)]
        if isa is None:
            if bad:
                sample = "; ".join(f"{m} {o}".strip() for m, o in bad[:3])
                failures.append(f"{os.path.basename(path)}: {name} (not a dispatched kernel) "
                                f"uses {len(bad)} instructions beyond x86-64, e.g. {sample}")
            continue
        kernels[isa] += 1
        ops = " ".join(o for _, o in insns)
        if isa == "avx2":
            if AVX512_ONLY.search(ops):
                failures.append(f"{name}: an AVX2 kernel uses AVX-512 registers")
            if "%ymm" not in ops:
                failures.append(f"{name}: an AVX2 kernel without ymm registers (check broken?)")
        elif isa == "avx512" and "%zmm" not in ops:
            failures.append(f"{name}: an AVX-512 kernel without zmm registers (check broken?)")
    if has_kernels:
        for isa in KERNELS:
            if kernels[isa] == 0:
                failures.append(f"{os.path.basename(path)}: no {isa} kernel found (nn_*_{isa}_*)")
    allowed = ", ".join(f"{kernels[i]} {i} kernels" for i in KERNELS) if has_kernels else "none"
    print(f"  {path}: {len(funcs)} functions, {n_insn} instructions; beyond the baseline "
          f"allowed in: {allowed}")
    return failures


def default_files():
    import nncore._core as core  # noqa: the compiled module the current Python imports

    so = os.path.abspath(core.__file__)
    site = os.path.dirname(os.path.dirname(so))
    libs = sorted(glob.glob(os.path.join(site, "nncore.libs", "*")))
    return [so], libs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="*", help="nncore._core shared objects (default: the "
                    "installed one, and its bundled libraries in nncore.libs/)")
    ap.add_argument("--libs", nargs="*", default=None,
                    help="bundled libraries to check (no dispatched kernels allowed)")
    args = ap.parse_args(argv)
    objdump = shutil.which("objdump")
    if objdump is None:
        print("FAIL baseline ISA check: objdump not found (binutils)")
        return 2
    if args.files:
        cores, libs = args.files, args.libs or []
    else:
        cores, libs = default_files()
    print("Instructions beyond the x86-64 baseline, by function:")
    failures = []
    for path in cores:
        failures += check(path, objdump, has_kernels=True)
    for path in libs:
        failures += check(path, objdump, has_kernels=False)
    for f in failures:
        print(f"  FAIL {f}")
    if failures:
        print(f"FAIL baseline ISA check: {len(failures)} problems")
        return 1
    print("PASS baseline ISA check: AVX/AVX2/AVX-512 and every other instruction beyond SSE2 "
          "appear only in the dispatched kernels; the AVX2 kernels use no AVX-512")
    return 0


if __name__ == "__main__":
    sys.exit(main())
