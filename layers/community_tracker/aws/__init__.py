"""AWS adapters: boto3 clients, SSM secrets, the DynamoDB stores, the WebSocket management API."""
