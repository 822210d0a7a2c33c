"""SSM Parameter Store through Powertools Parameters: decrypted SecureStrings, cached per container."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parameters import SSMProvider

__all__ = ["ParameterStore"]


class ParameterStore:
    def __init__(self, ssm_client: Any) -> None:
        self._provider = SSMProvider(boto3_client=ssm_client)

    def secure_string(self, name: str, max_age_seconds: int) -> str:
        """The parameter's decrypted value, fetched again once ``max_age_seconds`` have passed."""
        value = self._provider.get(name, max_age=max_age_seconds, decrypt=True)
        if not isinstance(value, str):
            raise TypeError(f"parameter {name} is not a string")
        return value
