FROM busybox
ENV A=1
RUN A=2; echo "$A ${A}" > /out
