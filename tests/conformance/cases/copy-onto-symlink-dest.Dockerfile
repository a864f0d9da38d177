FROM busybox
RUN mkdir /real && ln -s /real /to-dir && ln -s /etc/hostname-nope /to-missing && echo t > /tfile && ln -s /tfile /to-file
COPY hello.txt /to-dir
COPY hello.txt /to-file
COPY exec.sh /to-missing
