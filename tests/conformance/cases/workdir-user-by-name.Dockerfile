FROM busybox
USER app
WORKDIR /appdir/inner
USER nobody:app
WORKDIR /mixed
