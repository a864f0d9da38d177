FROM busybox
COPY ["glob/*.txt", "dir/sub", "/j/"]
COPY ["hello.txt", "./"]
