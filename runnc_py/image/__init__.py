"""Unikernel container images: `runnc-py image build` (layers, config, OCI and docker
archives) and the runtime's reading back of an image's settings (runnc-py's own and urunc's).

See docs/engines.md, "Images".
"""
