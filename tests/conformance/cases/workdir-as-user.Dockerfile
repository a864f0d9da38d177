FROM busybox
USER 1000:1000
WORKDIR /owned/by/user
USER root
RUN ls -ln / | grep owned > /out
