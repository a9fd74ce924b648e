"""The API Gateway management API (`@connections`): posting to one WebSocket connection."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from botocore.exceptions import ClientError


class ManagementApiPoster:
    """Posts through the API Gateway management API (`@connections`)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def post(self, connection_id: str, data: bytes) -> bool:
        try:
            self._client.post_to_connection(ConnectionId=connection_id, Data=data)
        except ClientError as error:
            if error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == HTTPStatus.GONE:
                return False
            raise
        return True
