FROM busybox
ADD archive.tar /x/
