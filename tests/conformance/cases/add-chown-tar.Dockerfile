FROM busybox
ADD --chown=1000:1000 archive.tar /ac/
ADD --chown=1000:1000 hello.txt /ac/
