"""The order execution engine: everything that is deployed to AWS Lambda."""
