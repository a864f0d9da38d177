FROM busybox AS src
RUN mkdir -p /o/etc && echo cfg > /o/etc/cfg && ln -s /nowhere /o/dangling && mkdir /o/bin && ln -s busybox /o/bin/xx
FROM busybox
RUN ln -s /real-etc /e2 && mkdir /real-etc
COPY --from=src /o/etc /e2/
COPY --from=src /o/ /
