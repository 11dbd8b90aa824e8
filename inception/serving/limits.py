"""The server's default limits and request-size thresholds, shared by ``server``, ``rest`` and
``grpc_api`` (and the command line), so that the protocol modules need not import the server."""

CLASSIFY_METHOD = "tensorflow/serving/classify"
DEFAULT_HOST = "0.0.0.0"
DEFAULT_REST_PORT = 8501  # TensorFlow Serving's ports
DEFAULT_GRPC_PORT = 8500
DEFAULT_POLL_SECONDS = 2.0  # looking for new versions
DEFAULT_GRACE_SECONDS = 30.0  # on SIGTERM, for queued work
DEFAULT_MAX_REQUEST_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_IMAGE_PIXELS = 64_000_000
DEFAULT_MAX_LARGE_REQUESTS = 2
DEFAULT_READ_TIMEOUT = 30.0
LARGE_REQUEST_BYTES = 1024 * 1024  # bodies above this take a turn (--max-large-requests)
SMALL_REQUEST_BYTES = 64 * 1024  # bodies up to this are parsed on the event loop
MEDIUM_PARSE_THREADS = 2  # parse the bodies in between
PORT_FLAGS = {"REST": "--rest-port", "gRPC": "--grpc-port"}
