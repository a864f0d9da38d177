FROM busybox
ENV EMPTY="" X=1
ENV X=2
RUN env | sort | grep -v HOSTNAME > /out
