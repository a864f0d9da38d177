FROM busybox
USER 1000:1000
WORKDIR /owned/by/user
USER root
RUN stat -c "%a %u %g %n" /owned /owned/by /owned/by/user > /out
