"""Accounts and access: resident logins (WeChat, Alipay), staff accounts and roles, bindings."""
