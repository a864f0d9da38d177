FROM busybox
ADD --chmod=600 archive.tar /chm/
ADD --chmod=700 archives/plain.txt.gz /chm2/
