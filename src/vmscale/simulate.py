"""The what-if simulator (closed-loop replay over the real policy code)."""
