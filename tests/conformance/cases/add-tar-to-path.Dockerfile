FROM busybox
ADD archive.tar /z
