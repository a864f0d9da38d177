FROM busybox
USER app
WORKDIR /tmp
WORKDIR /etc/new/deeper
USER 1234:5678
WORKDIR /home/app/numeric
