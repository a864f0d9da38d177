FROM busybox
COPY empty_dir /e
COPY empty_dir /e2/
