FROM busybox
ADD hello.txt /
ADD dir /added-dir
