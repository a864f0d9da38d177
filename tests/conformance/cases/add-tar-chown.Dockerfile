FROM busybox
ADD --chown=1000:1000 archive.tar /t/
ADD --chown=app archive.tar.gz /g/
