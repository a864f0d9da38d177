from busybox as Base
env a=1
run echo $a > /out
workdir /w
copy hello.txt .
label L=v
cmd ["x"]
