"""articleqa's faces: the HTTP API (FastAPI) with the Gradio chat mounted on the same app."""
