"""`runnc-py audit`: read the seccomp filters a process really runs under, turn them back into
rules, and compare them with what our policy meant (docs/audit.md).

Pure core: program.py (parse/validate classic BPF), emulator.py, symbolic.py (the decompiler),
intervals.py, semantics.py (a chain as one partition of inputs), rules.py (paths -> readable
rules), diff.py, verdict.py, findings.py, callspec.py, disasm.py, report.py, compare.py.
Effectful shell: ptrace.py (PTRACE_SECCOMP_GET_FILTER), procfacts.py (/proc), names.py
(libseccomp's resolver), profile.py (OCI profiles compiled with libseccomp), expect.py and
sources.py (policies, profiles, BPF files, live processes and containers -> programs).
"""
