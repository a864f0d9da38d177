FROM busybox
COPY ["with space.txt", "/sp ace/"]
