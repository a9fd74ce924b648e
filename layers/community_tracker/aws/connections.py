"""The API Gateway management API (`@connections`): posting to one WebSocket connection."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from community_tracker.errors import PostFailed


class ManagementApiPoster:
    """Posts through the API Gateway management API (`@connections`)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def post(self, connection_id: str, data: bytes) -> bool:
        """True: sent; False: the connection is gone (410). Any other failure is `PostFailed`."""
        try:
            self._client.post_to_connection(ConnectionId=connection_id, Data=data)
        except ClientError as error:
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status == HTTPStatus.GONE:
                return False
            code = error.response.get("Error", {}).get("Code", "")
            raise PostFailed(f"{status} {code}".strip()) from error
        except BotoCoreError as error:  # no answer: connection refused, timed out, closed
            raise PostFailed(type(error).__name__) from error
        return True
