"""The real kernel as the judge: corpus files and generated sequences on a kernel under QEMU.

``kernels`` builds kernels from Debian's ``linux-source-*`` (cached by version,
config and patches), ``guest`` boots one with a CXL type-3 device and talks to
the agent inside it, ``target`` runs steps there and compares each verdict
with the model's, ``runner`` runs corpus files and conformance campaigns, and
``known`` lists the differences that are QEMU's or a test patch's, not the
model's.  ``ptfuzz live --help`` is the command line.
"""
