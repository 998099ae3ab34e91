<?php
/* Русские тексты install/unstep1.php. */
$MESS['ORDERBRIDGE_UNSTEP_WARN'] = 'orderbridge будет удалён: обработчики событий, агент, точка приёма статусов и свойство «Сделка Битрикс24». Свойства визита Roistat и UTM остаются в заказах.';
$MESS['ORDERBRIDGE_UNSTEP_WAITING'] = 'В очереди ещё ждут отправки в orderbridge снимков заказов: #COUNT#.';
$MESS['ORDERBRIDGE_UNSTEP_SAVE'] = 'Можно сохранить настройки и очередь, чтобы позже установить модуль снова.';
$MESS['ORDERBRIDGE_UNSTEP_SAVE_DATA'] = 'Сохранить настройки и очередь';
$MESS['ORDERBRIDGE_UNSTEP_DELETE'] = 'Удалить';
