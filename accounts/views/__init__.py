"""Pages of accounts: sign-in and second factors, the person's own account, members and API keys."""
