"""The append-only audit log 审计日志: every staff action and every refusal."""
