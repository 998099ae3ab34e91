<?php
/* Русские тексты install/index.php. */
$MESS['ORDERBRIDGE_MODULE_NAME'] = 'orderbridge';
$MESS['ORDERBRIDGE_MODULE_DESCRIPTION'] = 'Передаёт каждый заказ магазина вместе с визитом Roistat в orderbridge, который отправляет его в Roistat и Битрикс24.';
$MESS['ORDERBRIDGE_NEED_SALE'] = 'Для orderbridge нужен модуль «Интернет-магазин» (sale).';
$MESS['ORDERBRIDGE_VISIT_PROPERTY_NAME'] = 'Визит Roistat';
$MESS['ORDERBRIDGE_DEAL_PROPERTY_NAME'] = 'Сделка Битрикс24';
$MESS['ORDERBRIDGE_SALE_TOO_OLD'] = 'Для orderbridge нужен модуль «Интернет-магазин» (sale) версии #MIN# или новее; на сайте — #VERSION#.';
$MESS['ORDERBRIDGE_INSTALL_TITLE'] = 'Установка orderbridge';
$MESS['ORDERBRIDGE_UNINSTALL_TITLE'] = 'Удаление orderbridge';
$MESS['ORDERBRIDGE_INSTALL_FAILED'] = 'Установка отменена: #ERROR#';
$MESS['ORDERBRIDGE_UNINSTALL_FAILED'] = 'Модуль не удалось удалить: #ERROR#';
$MESS['ORDERBRIDGE_PROPERTY_UTM_SOURCE'] = 'UTM source (источник)';
$MESS['ORDERBRIDGE_PROPERTY_UTM_MEDIUM'] = 'UTM medium (канал)';
$MESS['ORDERBRIDGE_PROPERTY_UTM_CAMPAIGN'] = 'UTM campaign (кампания)';
$MESS['ORDERBRIDGE_PROPERTY_UTM_CONTENT'] = 'UTM content (объявление)';
$MESS['ORDERBRIDGE_PROPERTY_UTM_TERM'] = 'UTM term (ключевое слово)';
