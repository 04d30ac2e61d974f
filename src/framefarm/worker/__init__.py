"""Worker-side code shared by the Lambda render-chunk handler and the Cloud Run server."""
