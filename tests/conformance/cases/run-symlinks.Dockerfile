FROM busybox
RUN ln -s /etc/passwd /abs && ln -s ../etc /rel && ln -s /nowhere /dangling
