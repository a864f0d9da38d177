FROM busybox AS a
USER  app:app
FROM busybox AS b
USER 0:0
FROM busybox
USER root
USER app:1000
