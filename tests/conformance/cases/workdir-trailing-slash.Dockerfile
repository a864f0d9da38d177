FROM busybox
WORKDIR /app/
