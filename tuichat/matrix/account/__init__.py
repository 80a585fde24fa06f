"""The account on this machine: the profile directory and its stored session,
logging in (password, SSO) and out, keeping the access token valid."""
