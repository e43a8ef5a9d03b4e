"""`theo`, the command line: run the service locally (`theo serve`), manage models, and the
clients of the service (upload, realtime streaming, microphone). Client code lives here, not
in `serve/`: it talks to the service over HTTP/WebSocket and needs none of the server."""
