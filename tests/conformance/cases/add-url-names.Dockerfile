FROM busybox
ADD {http}/hello.txt?x=1&y=2 /q/
ADD {http}/dir/ /listing/
ADD {http}/dir/sub/b.txt /exists-as-dir-no-slash
RUN mkdir /made
ADD {http}/exec.sh /made
