"""`runnc-py audit`: read the seccomp filters a process really runs under, turn them back into
rules, and compare them with what our policy meant (docs/audit.md).

Pure core: program.py (parse/validate classic BPF), disasm.py, emulator.py, intervals.py,
symbolic.py (decompiler), rules.py (paths -> readable rules), diff.py, verdict.py, report.py.
Effectful shell: ptrace.py (PTRACE_SECCOMP_GET_FILTER), procfacts.py (/proc), sources.py
(policies, OCI profiles, BPF files, live processes -> programs).
"""
