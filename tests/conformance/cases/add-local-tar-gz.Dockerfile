FROM busybox
ADD archive.tar.gz /y/
