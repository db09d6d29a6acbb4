"""The Python SDK for applications: prompts from the registry (:mod:`pilothouse.sdk.prompts`)."""
