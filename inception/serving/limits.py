"""The server's default limits and request-size thresholds, shared by ``server``, ``rest`` and
``grpc_api`` (and the command line), so that the protocol modules need not import the server."""

CLASSIFY_METHOD = "tensorflow/serving/classify"
DEFAULT_HOST = "127.0.0.1"  # no authentication: listen on other interfaces only when asked
DEFAULT_REST_PORT = 8501  # TensorFlow Serving's ports
DEFAULT_GRPC_PORT = 8500
DEFAULT_POLL_SECONDS = 2.0  # looking for new versions
DEFAULT_GRACE_SECONDS = 30.0  # on SIGTERM, for queued work
DEFAULT_MAX_REQUEST_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_RECEIVE_BYTES = 256 * 1024 * 1024  # all requests in flight together
DEFAULT_MAX_IMAGE_PIXELS = 64_000_000
# Scans of a progressive JPEG: each one is a pass over every pixel. Encoders write about 10
# (libjpeg's progression script; mozjpeg's optimized ones stay under 64); refused above this.
DEFAULT_MAX_JPEG_SCANS = 100
DEFAULT_MAX_LARGE_REQUESTS = 2
DEFAULT_READ_TIMEOUT = 30.0
DEFAULT_IDLE_TIMEOUT = 60.0  # a connection with no request in progress is closed after this
DEFAULT_HEADER_TIMEOUT = 10.0  # a request's headers must have arrived this long after its start
DEFAULT_MAX_CONNECTIONS_CAP = 10_000  # per API, when the descriptor limit is higher
DESCRIPTOR_RESERVE = 128  # descriptors kept for model files, gRPC's own, logs and the loader
LARGE_REQUEST_BYTES = 1024 * 1024  # bodies above this take a turn (--max-large-requests)
SMALL_REQUEST_BYTES = 64 * 1024  # bodies up to this are parsed on the event loop
MEDIUM_PARSE_THREADS = 2  # parse the bodies in between
LOG_INTERVAL_SECONDS = 10.0  # one log line per condition (connection cap, descriptors) at most
PORT_FLAGS = {"REST": "--rest-port", "gRPC": "--grpc-port"}


def jpeg_scans_error(scans: int) -> str | None:
    """Why ``--max-jpeg-scans`` cannot be ``scans`` (``serve`` and ``export``), or None."""
    if scans < 1:
        return f"--max-jpeg-scans must be >= 1 (a baseline JPEG has 1), got {scans}."
    return None


def descriptor_limit() -> int:
    """The process's soft limit on open descriptors (``ulimit -n``)."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 2**31 if soft == resource.RLIM_INFINITY else soft


def default_max_connections(soft: int | None = None) -> int:
    """Half the descriptors left after ``DESCRIPTOR_RESERVE`` go to REST connections (the other
    half to gRPC's), at most ``DEFAULT_MAX_CONNECTIONS_CAP``: 448 under a soft limit of 1024."""
    soft = descriptor_limit() if soft is None else soft
    return max(1, min(DEFAULT_MAX_CONNECTIONS_CAP, (soft - DESCRIPTOR_RESERVE) // 2))


def default_max_grpc_connections(rest: int, soft: int | None = None) -> int:
    """The descriptors left after ``DESCRIPTOR_RESERVE`` and the ``rest`` REST connections go to
    gRPC's, at most ``DEFAULT_MAX_CONNECTIONS_CAP``: 448 under a soft limit of 1024."""
    soft = descriptor_limit() if soft is None else soft
    return max(1, min(DEFAULT_MAX_CONNECTIONS_CAP, soft - DESCRIPTOR_RESERVE - rest))
