"""Documents 文档: what every file the project writes for people shares (DESIGN.md, Layout)."""
