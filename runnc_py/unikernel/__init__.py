"""Solo5 unikernel files: ELF validation (elf), Solo5 notes (notes), the device manifest
(manifest) and their rendering for `runnc-py inspect` (describe)."""
